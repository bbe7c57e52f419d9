"""Drop-in spellings of the tools zkherd replaces (zkexec, zkdo, zkfarmer): each module turns its
tool's command line into a zkherd one and runs zkherd in this very process (common.run), so the
runner's signal and child handling is exactly zkherd's (docs/migration.md)."""
