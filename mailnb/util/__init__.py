"""What every stage uses and none owns: private files, the synchronous front of the async core,
work fanned out to forked processes, and the status marks of the forms."""
