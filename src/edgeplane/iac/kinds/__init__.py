"""The sections of the file, one module per kind of object."""
