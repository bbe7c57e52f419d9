"""zkherd: Apache ZooKeeper coordination for plain Unix programs.

The runner package. zkherd.common is the collection's plugins/module_utils/common, packaged here
so that the runner and the Ansible plugins share one copy of the logic.
"""

__version__ = "0.1.0"
