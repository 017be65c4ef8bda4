"""The edge agent: registers the node, follows its snapshot, drives nginx and reports back."""
