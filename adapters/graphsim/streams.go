package graphsim

import (
	"runtime"
	"sync"

	"github.com/mailvault/mailvault/adapters/itemformat"
)

// streamKey names a generated item's version: its stream follows from it.
type streamKey struct {
	f         *folder
	pos       int
	changeKey string
}

// exportStream is the stream exportItems answers for the item at pos
// (called with s.mu held): the one it was imported from, one made ahead
// (graph.streams_ahead), or one made now from its MIME (the read flag
// from its position, as the item JSON says).
func (s *Server) exportStream(f *folder, pos int) func() ([]byte, error) {
	if st := s.store.Stream(f, pos); st != nil {
		return func() ([]byte, error) { return st, nil }
	}
	if st, ok := s.streamsAhead[streamKey{f, pos, s.store.ChangeKey(f, pos)}]; ok && s.store.Generated(f, pos) {
		return func() ([]byte, error) { return st, nil }
	}
	content, read, isJSON, kind := s.store.Content(f, pos), pos%3 != 0, s.store.IsJSON(f, pos), f.Kind
	// The making runs after the lock is released: it is the costly part.
	return func() ([]byte, error) {
		if isJSON {
			// An event or contact created from JSON: its properties come
			// from what the JSON says.
			var err error
			if content, err = itemformat.GraphJSONAsMIME(kind, content); err != nil {
				return nil, err
			}
		}
		return itemformat.ExportStream(content, read)
	}
}

// makeStreamsAhead makes every generated item's stream, on every core.
func (s *Server) makeStreamsAhead() {
	type job struct {
		key     streamKey
		content []byte
	}
	jobs := make(chan job)
	var mu sync.Mutex
	var wg sync.WaitGroup
	s.streamsAhead = map[streamKey][]byte{}
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				st, err := itemformat.ExportStream(j.content, j.key.pos%3 != 0)
				if err != nil {
					continue // made when asked, and refused then as it would be
				}
				mu.Lock()
				s.streamsAhead[j.key] = st
				mu.Unlock()
			}
		}()
	}
	for _, m := range s.mailboxes {
		boxes := []*mailbox{m}
		if m.archive != nil {
			boxes = append(boxes, m.archive)
		}
		for _, b := range boxes {
			for _, f := range b.Folders {
				for pos := 1; pos <= len(f.Items); pos++ {
					if s.store.Generated(f, pos) {
						jobs <- job{streamKey{f, pos, s.store.ChangeKey(f, pos)}, s.store.Content(f, pos)}
					}
				}
			}
		}
	}
	close(jobs)
	wg.Wait()
}
