"""The edge node's HTTP data plane: nginx, rendered from the snapshot and driven by the agent."""
