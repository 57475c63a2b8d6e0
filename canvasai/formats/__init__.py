"""File formats: OpenRaster projects, untrusted image input, export, atomic writes, recovery.

No Qt, no torch: everything here runs in a plain pytest run."""
