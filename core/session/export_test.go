package session

// WarmWait is warmWait for the external tests.
var WarmWait = &warmWait
