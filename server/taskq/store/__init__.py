"""Persistence behind one narrow interface (base.Store); the key layout lives in keys.py."""
