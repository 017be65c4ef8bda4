"""A project's bot settings as its site's ``BotSpec``, with the key of its challenge cookies.

The key is derived from the control plane's secret box (``SecretBox.derive``) and the project
id: every replica computes the same, nothing is stored, and one project's key tells nothing of
another's. It reaches the edge nodes inside the snapshot (as certificates' keys do) and is
never logged or answered by the API.
"""

from __future__ import annotations

from edgeplane.model.bots import BotSettings
from edgeplane.protocol.bots import BehaviourSpec, BotSpec, GoodBotSpec
from edgeplane.secrets import SecretBox

BOT_SECRET = "bot-challenge-cookies"  # the label of SecretBox.derive


def bot_key(box: SecretBox, project: str) -> str:
    """The hex HMAC key of ``project``'s challenge cookies."""
    return box.derive(f"{BOT_SECRET} {project}").hex()


def bot_spec(settings: BotSettings, key: str) -> BotSpec | None:
    """The site's ``BotSpec``; None when the project uses no bot protection (or has no key)."""
    if not settings.enabled or not key:
        return None
    b = settings.behaviour
    return BotSpec(
        mode=settings.mode,
        automated=settings.automated,
        behaviour=BehaviourSpec(
            action=b.action,
            window_s=b.window_s,
            max_requests=b.max_requests,
            max_paths=b.max_paths,
            max_error_ratio=b.max_error_ratio,
            min_requests=b.min_requests,
            flag_s=b.flag_s,
        ),
        challenge=settings.challenge,
        difficulty=settings.difficulty,
        cookie_ttl_s=settings.cookie_ttl_s,
        good_bots=tuple(
            GoodBotSpec(
                name=g.name,
                user_agent=g.user_agent,
                addresses=tuple(sorted(set(g.addresses))),
            )
            for g in settings.good_bots
        ),
        key=key,
    )
