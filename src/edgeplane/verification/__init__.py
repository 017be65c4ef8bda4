"""Domain ownership verification: the real checks behind "prove you own this domain".

Three methods, each a function returning a ``CheckResult``: a TXT record at
``_edgeplane-challenge.<domain>`` asked from every delegated name server (``dns_txt``), a file
under ``/.well-known/edgeplane-verification/`` served on every address of the domain
(``http_file``), and a code mailed to the domain's administrative addresses (``email_code``).
``resolve`` looks domains up the way the world sees them: through a recursive resolver to find
the delegation, then straight from the domain's own name servers.
"""
