"""``minidl.nn``: modules (layers with parameters and state) and the functional API."""
from . import functional
