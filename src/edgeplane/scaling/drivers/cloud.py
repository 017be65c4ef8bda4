"""The ``cloud`` driver: each instance is a machine of a cloud, through Apache Libcloud's compute
drivers (``libcloud.compute``).

The template (``edgeplane.model.scaling.CloudTemplate``) names a Libcloud provider
(``provider``: ``ec2``, ``gce``, ``azure_arm``, ``digital_ocean``, ... or ``dummy``, Libcloud's
in-memory provider), the machine's ``image``, ``size`` and ``location``, the ``port`` its origin
serves on and optional ``user_data``.

Constructing the Libcloud driver: ``credentials`` are references (``env:NAME``,
``file:/path``), resolved by :func:`resolve_ref` at each call and never stored. ``key`` is
passed as the constructor's first positional argument and ``secret`` as its second (EC2
``key, secret``; GCE ``user_id, key``; DigitalOcean ``key``; dummy ``creds``); every other
credential and option goes by keyword (``region``, ``project``, ``datacenter``...). When a
credential or option names the constructor's first parameter itself (Azure ARM's
``tenant_id``), ``key`` and ``secret`` go by keyword too. An option named
``create_node.<argument>`` goes to ``create_node`` instead, as ``<argument>`` (EC2
``create_node.ex_keyname``, Azure ARM ``create_node.ex_resource_group``). One Libcloud
driver object is kept per (provider, credential references and values, options), and every
call on it holds its lock (Libcloud's connections are not meant for concurrent use).

Instances are nodes named ``ep-<8 hex of the group>-<name>`` (at most 63 characters: a longer
name is cut and ends with 8 hex of its hash), so ``list(group)`` is ``list_nodes()`` filtered
by the prefix. Node states: running -> ``running``; pending, starting, rebooting, unknown,
reconfiguring, migrating, updating -> ``pending``; any other (stopped, stopping, terminated,
error, suspended, paused) -> ``exited`` with the state's name. A terminated node counts as
gone for ``create`` and ``delete`` (a cloud may list it for a while).

Errors of Libcloud (authentication, quotas, bad arguments) become ``DriverError`` with
Libcloud's message, from which every resolved credential value is removed; the original
exception is not chained (a logged traceback would show it).

List, get and delete take no template: the driver learns a group's template at ``create`` (or
from :meth:`CloudDriver.bind`) and keeps it in ``<state_dir>/<group>/template.json``, so that
after a control-plane restart it still knows which cloud and credentials a group's instances
are in (a template holds credential references, never secrets). A group it knows nothing of
has no instances as far as it can tell.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import json
import os
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from edgeplane.model.scaling import CloudTemplate
from edgeplane.scaling.drivers.base import DriverError, Instance, InstanceSpec, InstanceState
from edgeplane.scaling.drivers.local import group_path

MAX_NODE_NAME = 63
MESSAGE_LIMIT = 500
CONNECTION_TIMEOUT_S = 60
_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
_PROVIDER = re.compile(r"^[a-z0-9_]{1,64}$")
_PENDING = {"pending", "starting", "rebooting", "unknown", "reconfiguring", "migrating", "updating"}
# create_node's user data argument, by the name each provider gives it
_USER_DATA_ARGS = ("ex_userdata", "ex_user_data", "ex_customdata", "cloud_init")
_NODE_ARGS = {"name", "size", "image", "location"}
CREATE_NODE_OPTION = "create_node."

Resolver = Callable[[str], str]


def resolve_ref(ref: str) -> str:
    """The secret a credential reference names: ``env:NAME`` (an environment variable of the
    control plane) or ``file:/path`` (a file's text, without surrounding whitespace). Raises
    ``DriverError`` naming the reference, never a value."""
    kind, _, where = ref.partition(":")
    if kind == "env" and where:
        value = os.environ.get(where)
        if value is None:
            raise DriverError(f"credential reference {ref}: the variable is not set")
    elif kind == "file" and where.startswith("/"):
        try:
            with open(where, encoding="utf-8") as f:
                value = f.read().strip()
        except (OSError, UnicodeDecodeError) as exc:
            why = exc.strerror if isinstance(exc, OSError) and exc.strerror else "unreadable"
            raise DriverError(f"credential reference {ref}: cannot read the file ({why})") from None
    else:
        raise DriverError(f"credential reference {ref!r}: expected env:NAME or file:/path")
    if not value:
        raise DriverError(f"credential reference {ref}: empty")
    return value


def _driver_class(name: str) -> type[Any]:
    from libcloud.compute.providers import get_driver
    from libcloud.compute.types import Provider

    if not _PROVIDER.match(name):
        raise DriverError(
            f"unknown cloud provider {name!r} (Libcloud's names are lowercase: ec2, gce, ...)"
        )
    constant = getattr(Provider, name.upper(), None)
    if not isinstance(constant, str):
        raise DriverError(f"unknown cloud provider {name!r} (not a Libcloud compute provider)")
    try:
        return get_driver(constant)
    except Exception as exc:  # deprecated providers raise a bare Exception; imports may fail
        raise DriverError(f"cloud provider {name!r} cannot be used: {exc}") from None


def check_provider(name: str) -> str | None:
    """Why ``name`` is refused as a template's provider, or None when Libcloud has it."""
    try:
        _driver_class(name)
    except DriverError as exc:
        return str(exc)
    return None


def node_name(group: str, name: str) -> str:
    """The node of instance ``name`` of ``group``: ``ep-<8 hex of the group>-<name>``."""
    full = group_prefix(group) + name
    if len(full) <= MAX_NODE_NAME:
        return full
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    keep = MAX_NODE_NAME - len(group_prefix(group)) - len(digest) - 1
    return f"{group_prefix(group)}{name[:keep].rstrip('-')}-{digest}"


def group_prefix(group: str) -> str:
    return f"ep-{hashlib.sha256(group.encode()).hexdigest()[:8]}-"


def state_of(node_state: Any) -> InstanceState:
    value = str(getattr(node_state, "value", node_state)).lower()
    if value == "running":
        return "running"
    if value in _PENDING:
        return "pending"
    return "exited"


def scrub(message: str, secrets: tuple[str, ...]) -> str:
    """``message`` without any of ``secrets``, nor any line of a multi-line one, nor any
    string of a JSON one (a service account's key file) or its lines."""
    pieces = set()
    for secret in secrets:
        if len(secret) >= 4:
            pieces.add(secret)
        texts = [secret]
        with contextlib.suppress(ValueError):
            texts += _json_strings(json.loads(secret))
        for text in texts:
            if len(text) >= 8:
                pieces.add(text)
            pieces.update(line.strip() for line in text.splitlines() if len(line.strip()) >= 8)
    for piece in sorted(pieces, key=len, reverse=True):
        message = message.replace(piece, "[redacted]")
    if len(message) > MESSAGE_LIMIT:
        message = message[: MESSAGE_LIMIT - 3] + "..."
    return message


def _json_strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _json_strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _json_strings(v)]
    return []


@dataclass
class _Conn:
    """One Libcloud driver object and the lock its calls hold."""

    driver: Any
    secrets: tuple[str, ...]
    lock: threading.Lock = field(default_factory=threading.Lock)


class CloudDriver:
    """Machines of a cloud through Libcloud (see the module's docstring)."""

    kind = "cloud"

    def __init__(self, resolve: Resolver = resolve_ref, state_dir: Path | None = None) -> None:
        self._resolve = resolve
        self.state_dir = state_dir
        self._lock = threading.Lock()
        self._conns: dict[tuple[Any, ...], _Conn] = {}
        self._templates: dict[str, CloudTemplate] = {}

    # ------------------------------------------------------------------ templates, connections

    def bind(self, group: str, template: Mapping[str, Any]) -> None:
        """Tells the driver ``group``'s template (for list, get and delete; create does too)."""
        self._remember(group, _template(template))

    def _remember(self, group: str, template: CloudTemplate) -> None:
        with self._lock:
            if self._templates.get(group) == template:
                return
            self._templates[group] = template
            if self.state_dir is None:
                return
            path = self.state_dir / group_path(group) / "template.json"
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_suffix(".new")
                tmp.write_text(template.model_dump_json(indent=1) + "\n")
                tmp.replace(path)
            except OSError as exc:
                raise DriverError(f"cannot keep the template of {group}: {exc}") from None

    def _bound(self, group: str) -> CloudTemplate | None:
        """The group's template: as last told, or as kept on disk; None when unknown."""
        with self._lock:
            template = self._templates.get(group)
            if template is not None or self.state_dir is None:
                return template
            path = self.state_dir / group_path(group) / "template.json"
            try:
                text = path.read_text()
            except FileNotFoundError:
                return None
            except OSError as exc:
                raise DriverError(f"cannot read the template of {group}: {exc}") from None
            template = _template(json.loads(text))
            self._templates[group] = template
            return template

    def _conn(self, template: CloudTemplate) -> _Conn:
        cls = _driver_class(template.provider)
        resolved = {name: self._resolve(ref) for name, ref in sorted(template.credentials.items())}
        secrets = tuple(resolved.values())
        ctor_params = _parameters(cls.__init__)
        ctor_options = {
            k: v for k, v in template.options.items() if not k.startswith(CREATE_NODE_OPTION)
        }
        fingerprint = hashlib.sha256("\0".join(secrets).encode()).hexdigest()
        key = (
            template.provider,
            tuple(sorted(template.credentials.items())),
            tuple(sorted((k, repr(v)) for k, v in ctor_options.items())),
            fingerprint,  # a rotated secret makes a new connection
        )
        with self._lock:
            conn = self._conns.get(key)
        if conn is not None:
            return conn
        args, kwargs = _constructor_arguments(ctor_params, resolved, ctor_options)
        try:
            driver = cls(*args, **kwargs)
        except Exception as exc:
            raise DriverError(_message(template.provider, exc, secrets)) from None
        connection = getattr(driver, "connection", None)
        if connection is not None and getattr(connection, "timeout", 0) is None:
            connection.timeout = CONNECTION_TIMEOUT_S
        with self._lock:
            return self._conns.setdefault(key, _Conn(driver=driver, secrets=secrets))

    def _call(
        self,
        template: CloudTemplate,
        conn: _Conn,
        fn: Callable[..., Any],
        *args: Any,
        **kwargs: Any,
    ) -> Any:
        try:
            return fn(*args, **kwargs)
        except DriverError:
            raise
        except Exception as exc:
            raise DriverError(_message(template.provider, exc, conn.secrets)) from None

    def _nodes(self, template: CloudTemplate, conn: _Conn, prefix: str) -> list[Any]:
        nodes = self._call(template, conn, conn.driver.list_nodes)
        return [n for n in nodes if isinstance(n.name, str) and n.name.startswith(prefix)]

    # ------------------------------------------------------------------ the Driver protocol

    def create(self, spec: InstanceSpec) -> Instance:
        if not _NAME.match(spec.name):
            raise DriverError(
                f"invalid instance name {spec.name!r}: [a-z0-9-], at most 63 characters"
            )
        template = _template(spec.template)
        self._remember(spec.group, template)
        conn = self._conn(template)
        wanted = node_name(spec.group, spec.name)
        with conn.lock:
            for node in self._nodes(template, conn, wanted):
                if node.name == wanted and not _gone(node):
                    return self._instance(spec.group, template, node)
            kwargs = self._create_arguments(template, conn, spec)
            node = self._call(template, conn, conn.driver.create_node, **kwargs)
            if node.name != wanted:
                # a provider that does not take the name (Libcloud's dummy): its in-memory node
                # is the object returned, so naming it here is what it lists from now on
                node.name = wanted
        return self._instance(spec.group, template, node)

    def _create_arguments(
        self, template: CloudTemplate, conn: _Conn, spec: InstanceSpec
    ) -> dict[str, Any]:
        from libcloud.compute.base import NodeImage, NodeLocation, NodeSize

        driver = conn.driver
        accepted = _parameters(driver.create_node)
        kwargs: dict[str, Any] = {
            "name": node_name(spec.group, spec.name),
            "image": NodeImage(id=template.image, name=template.image, driver=driver),
            "size": NodeSize(
                id=template.size, name=template.size, ram=0, disk=0, bandwidth=None, price=0.0,
                driver=driver,
            ),
        }
        if template.location:
            if "location" not in accepted:
                raise DriverError(f"cloud provider {template.provider} takes no location")
            kwargs["location"] = NodeLocation(
                id=template.location, name=template.location, country="", driver=driver
            )
        if template.user_data:
            text = fill_user_data(template.user_data, port=template.port, name=spec.name)
            arg = next((a for a in _USER_DATA_ARGS if a in accepted), None)
            if arg is not None:
                kwargs[arg] = text
            elif template.provider == "gce" and "ex_metadata" in accepted:
                kwargs["ex_metadata"] = {"startup-script": text}
            else:
                raise DriverError(
                    f"cloud provider {template.provider} takes no user data through Libcloud"
                )
        for option, value in template.options.items():
            if option.startswith(CREATE_NODE_OPTION):
                arg = option.removeprefix(CREATE_NODE_OPTION)
                if arg in _NODE_ARGS or arg in kwargs:
                    raise DriverError(f"option {option}: set by the template's own fields")
                kwargs[arg] = value
        return kwargs

    def delete(self, group: str, name: str, grace_s: float = 10.0) -> None:
        """Destroys the instance's node (every live node of its name). ``grace_s`` is the
        cloud's to honour: a destroyed machine gets the shutdown its provider gives it."""
        template = self._bound(group)
        if template is None:
            return  # never made by this driver: nothing of it to delete
        conn = self._conn(template)
        wanted = node_name(group, name)
        with conn.lock:
            for node in self._nodes(template, conn, wanted):
                if node.name == wanted and not _gone(node):
                    self._call(template, conn, conn.driver.destroy_node, node)

    def list(self, group: str) -> list[Instance]:
        template = self._bound(group)
        if template is None:
            return []
        conn = self._conn(template)
        with conn.lock:
            nodes = self._nodes(template, conn, group_prefix(group))
        best: dict[str, Any] = {}
        for node in nodes:  # one per name, a live node before a terminated one
            seen = best.get(node.name)
            if seen is None or (_gone(seen) and not _gone(node)):
                best[node.name] = node
        return [self._instance(group, template, node) for node in best.values()]

    def get(self, group: str, name: str) -> Instance:
        wanted = node_name(group, name)
        for instance in self.list(group):
            if instance.extra.get("node_name") == wanted:
                return instance
        return Instance(name=name, ref="", host="", port=0, state="missing")

    def cpu_percent(self, group: str, name: str) -> float | None:
        return None  # a cloud instance reports its own metrics through the API

    def memory_percent(self, group: str, name: str) -> float | None:
        return None

    def _instance(self, group: str, template: CloudTemplate, node: Any) -> Instance:
        ips = list(node.public_ips or []) if template.address == "public" else []
        ips = ips or (list(node.private_ips or []) if template.address == "private" else [])
        state = state_of(node.state)
        raw = str(getattr(node.state, "value", node.state))
        created = getattr(node, "created_at", None)
        return Instance(
            name=node.name[len(group_prefix(group)) :],
            ref=str(node.id),
            host=str(ips[0]) if ips else "",
            port=template.port,
            state=state,
            detail="" if state == "running" else f"cloud state: {raw}",
            started_at=created if isinstance(created, datetime) else None,
            extra={"node_name": node.name, "node_id": str(node.id), "cloud_state": raw},
        )


def fill_user_data(text: str, *, port: int, name: str) -> str:
    """``{port}`` and ``{name}`` replaced in user data; any other brace is left alone (user
    data is a script or cloud-init file, full of them)."""
    return text.replace("{port}", str(port)).replace("{name}", name)


def _template(template: Mapping[str, Any]) -> CloudTemplate:
    if isinstance(template, CloudTemplate):
        return template
    try:
        return CloudTemplate.model_validate(dict(template))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise DriverError(f"invalid cloud template: {where}: {first['msg']}") from None


def _gone(node: Any) -> bool:
    return str(getattr(node.state, "value", node.state)).lower() == "terminated"


def _parameters(fn: Callable[..., Any]) -> dict[str, inspect.Parameter]:
    try:
        params = dict(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        return {}
    params.pop("self", None)
    return params


def _constructor_arguments(
    params: Mapping[str, inspect.Parameter],
    credentials: Mapping[str, str],
    options: Mapping[str, Any],
) -> tuple[list[Any], dict[str, Any]]:
    kwargs: dict[str, Any] = {k: v for k, v in credentials.items() if k not in ("key", "secret")}
    kwargs.update(options)
    positional = [
        p.name for p in params.values()
        if p.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    ]
    by_keyword = bool(positional) and positional[0] in kwargs
    args: list[Any] = []
    for name in ("key", "secret"):
        if name not in credentials:
            continue
        if by_keyword or (name == "secret" and "key" not in credentials):
            kwargs[name] = credentials[name]
        else:
            args.append(credentials[name])
    return args, kwargs


def _message(provider: str, exc: BaseException, secrets: tuple[str, ...]) -> str:
    text = str(exc) or type(exc).__name__
    return scrub(f"cloud provider {provider}: {type(exc).__name__}: {text}", secrets)
