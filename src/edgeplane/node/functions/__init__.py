"""Edge functions on a node: users' JavaScript request handlers (Workers module syntax), run
by a Node.js process of their own, one V8 isolate per function version (isolated-vm).

``runtime/`` is that process (``runtime.mjs``, its ``prelude/`` inside each isolate, and
``check.mjs``, the module check the control plane runs); ``find`` locates Node.js and the
runtime's installed npm packages; ``process`` starts, watches and drives the runtime (and
runs the check).
"""
