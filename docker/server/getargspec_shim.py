"""Restore inspect.getargspec (removed in Python 3.11) for pyramid_duh 0.1.2.

A bare alias to getfullargspec breaks uploads: pyramid_duh unpacks four fields.
"""
import inspect
from collections import namedtuple

if not hasattr(inspect, "getargspec"):
    ArgSpec = namedtuple("ArgSpec", "args varargs keywords defaults")

    def getargspec(func):
        spec = inspect.getfullargspec(func)
        return ArgSpec(spec.args, spec.varargs, spec.varkw, spec.defaults)

    inspect.getargspec = getargspec
