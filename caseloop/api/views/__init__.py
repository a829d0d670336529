"""The API's operations, one module per area. Views are thin: validate, call a service or
selector, serialise."""
