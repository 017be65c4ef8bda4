"""ACME issuance: the protocol client, the challenge answers the edge publishes, the orders."""
