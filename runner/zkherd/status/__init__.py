"""`zkherd status PATH...`: what a path is, read from the nodes zkherd writes (docs/operations.md).

kinds.py tells the kind and reads it (nodes.py: one snapshot per path, pipelined reads), text.py prints it,
show.py runs it.
"""
