"""Certificates of the domains the edge serves, in a one-way order of modules:

- ``versions``: the stored versions of each domain's certificate (keep, show, revoke); the
  edge serves the newest valid one. ``schedule`` says when a version is due for renewal.
- the issuers, each keeping what it issues as a version: ``internal`` (from the internal CA,
  ``internal_ca``), ``custom`` (uploads, validated), ``acme`` (``client`` speaks ACME,
  ``challenges`` publishes the answers through the edge, ``orders`` runs an order end to end,
  ``progress`` follows orders that run in the background of the API).
- ``renewal``: renews served certificates through their issuer, with alerts before expiry.

A module imports only modules above it in this list (a test holds the order).
"""
