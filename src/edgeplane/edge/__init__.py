"""The edge node: the snapshot it receives, its nginx data plane and its agent."""
