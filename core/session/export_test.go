package session

// WarmWait is warmWait for the external tests.
var WarmWait = &warmWait

// WriterLinger is writerLinger for the external tests.
var WriterLinger = &writerLinger

// WriteAsReader writes b to the TLS connection of every bound session,
// as crypto/tls does on the reader's behalf (a KeyUpdate's answer, an
// alert), and returns the first error.
func WriteAsReader(s *Server, b []byte) error {
	s.mu.Lock()
	var conns []*conn
	for c := range s.conns {
		if c.bound.Load() {
			conns = append(conns, c)
		}
	}
	s.mu.Unlock()
	for _, c := range conns {
		if _, err := c.nc.Write(b); err != nil {
			return err
		}
	}
	return nil
}
