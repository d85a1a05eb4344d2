"""Code that services which use the portal can install."""
