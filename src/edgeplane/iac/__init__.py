"""Infrastructure as code: a project as one file, exported, planned, applied, drift-checked.

``template`` resolves a file's variables and environment overlay, ``refs`` its references
(client side); ``document`` validates it into canonical objects, one ``Kind`` per section
(``kinds/``, listed in ``registry``); ``engine`` plans and applies in one transaction;
``service`` is what the REST API, the CLI and the SDK call; ``drift`` and ``drift_check``
compare the live state with the newest apply.
"""
