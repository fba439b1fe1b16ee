"""The spec templates; this file lets the folder install as the package dlpipe.specs."""
