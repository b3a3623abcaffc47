"""Experiments built on the engine, the planners and the store: the IMP loop, the ticket controls, the proxy check
and the speed benchmark."""
