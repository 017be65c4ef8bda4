"""Use cases shared by the API, the CLI, the SDK and infrastructure as code."""
