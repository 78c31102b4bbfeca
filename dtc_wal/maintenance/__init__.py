"""Tools over a whole log that span the layers: ``dtc verify`` of a format-2 log (it folds
every transaction with the protocol's own transition check) and ``dtc upgrade`` (format 1
to format 2). They sit above both the log and the protocol, and below the CLI."""
