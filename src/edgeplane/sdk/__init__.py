"""The Python API of the specification, embedded (local state) or against a control plane."""
