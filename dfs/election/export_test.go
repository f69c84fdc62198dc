package election

// crash stops e's rounds without leaving the election: its row stays, its
// counter stops moving, as when its process is killed.
func (e *Elector) crash() {
	e.mu.Lock()
	e.closed = true
	e.mu.Unlock()
	e.cancel()
	<-e.done
}
