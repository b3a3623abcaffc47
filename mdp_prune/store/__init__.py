"""The results store: `paths` names every file and folder, `io` reads and writes them atomically."""
