package prefork

// steer makes the kernel route new connections only to the sockets of the active slots.
// (Placeholder: implemented with a reuseport BPF program.)
func (s *supervisor) steer() {}
