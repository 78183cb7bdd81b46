"""A small shop: the bundled example program that typetrace traces in its demo."""
