package session

// WarmWait is warmWait for the external tests.
var WarmWait = &warmWait

// WriterLinger is writerLinger for the external tests.
var WriterLinger = &writerLinger
