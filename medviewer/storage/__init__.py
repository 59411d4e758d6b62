"""Label/correction store (SQLite)."""
