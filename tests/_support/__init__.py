"""Helper servers and child-process scripts used by the tests."""
