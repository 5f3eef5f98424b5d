// (written by the work that owns this file)
