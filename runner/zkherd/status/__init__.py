"""`zkherd status PATH...`: what a path is, read from the nodes zkherd writes (docs/operations.md).

recognize.py tells the kind and reads it (one snapshot per path, pipelined reads), text.py prints it.
"""
