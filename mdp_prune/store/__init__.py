"""The results store: `paths` names every file, `io` reads and writes them atomically.

The reads and writes are re-exported here, so that callers write `store.read_csv(...)`.
"""

from mdp_prune.store.io import (
    append_csv,
    load_torch,
    read_csv,
    read_json,
    replace_round,
    save_torch,
    write_bytes,
    write_csv,
    write_json,
)

__all__ = ["append_csv", "load_torch", "read_csv", "read_json", "replace_round", "save_torch", "write_bytes",
           "write_csv", "write_json"]
