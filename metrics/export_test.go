package metrics

// PyFloat exposes pyFloat to the external tests.
var PyFloat = pyFloat
