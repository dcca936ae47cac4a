package ewssim

import (
	"crypto/sha256"
	"fmt"

	"github.com/mailvault/mailvault/adapters/simtenant"
	"github.com/mailvault/mailvault/domain"
)

// The folders above and beside a mailbox's tree that Exchange has and the
// tenant file does not describe: the store's root (the distinguished
// folder "root", parent of msgfolderroot, the Top of Information Store)
// and the Recoverable Items folders under it. They hold no items.
type storeRoots struct {
	top         *simtenant.StoredFolder
	recoverable []*simtenant.StoredFolder // the root of Recoverable Items first
}

// roots returns the store folders of b (nil for the public folders),
// making them on first use. Called with s.mu held.
func (s *Server) roots(b *simtenant.Box) *storeRoots {
	if b == nil || b == s.store.Public {
		return nil
	}
	if r := s.storeRoots[b]; r != nil {
		return r
	}
	id := func(name string) string {
		sum := sha256.Sum256([]byte(b.ID + "\x00" + name))
		return fmt.Sprintf("AAMkAS%x", sum[:12])
	}
	top := &simtenant.StoredFolder{Box: b, ID: id("root"), Name: "", Kind: domain.KindMail, WellKnown: "root"}
	rec := &simtenant.StoredFolder{Box: b, ID: id("recoverableitemsroot"), Name: "Recoverable Items", Kind: domain.KindMail, WellKnown: "recoverableitemsroot", Parent: top}
	r := &storeRoots{top: top, recoverable: []*simtenant.StoredFolder{rec}}
	for _, sub := range []struct{ wellKnown, name string }{{"recoverableitemsdeletions", "Deletions"}, {"recoverableitemspurges", "Purges"},
		{"recoverableitemsversions", "Versions"}} {
		f := &simtenant.StoredFolder{Box: b, ID: id(sub.wellKnown), Name: sub.name, Kind: domain.KindMail, WellKnown: sub.wellKnown, Parent: rec}
		rec.Children = append(rec.Children, f)
		r.recoverable = append(r.recoverable, f)
	}
	top.Children = []*simtenant.StoredFolder{withParent(b.Root, top), rec}
	s.storeRoots[b] = r
	return r
}

// storeFolder finds one of b's store folders by id or well-known name.
func (s *Server) storeFolder(b *simtenant.Box, id, wellKnown string) *simtenant.StoredFolder {
	r := s.roots(b)
	if r == nil {
		return nil
	}
	for _, f := range append([]*simtenant.StoredFolder{r.top}, r.recoverable...) {
		if id != "" && f.ID == id || wellKnown != "" && f.WellKnown == wellKnown {
			return f
		}
	}
	return nil
}

// presented is a folder with its parent as EWS shows it: msgfolderroot's
// is the store's root, and the calendars and contact folders the model
// keeps beside the tree hang under msgfolderroot.
func (s *Server) presented(f *simtenant.StoredFolder) *simtenant.StoredFolder {
	switch {
	case f.Parent != nil || f.Box.Address == "" || f.WellKnown == "root":
		return f
	case f == f.Box.Root:
		if r := s.roots(f.Box); r != nil {
			return withParent(f, r.top)
		}
		return f
	}
	return withParent(f, f.Box.Root)
}

// children are a folder's subfolders as EWS shows them: msgfolderroot's
// include the calendars and contact folders the model keeps beside the
// tree, and a virtual store folder's are its own.
func children(f *simtenant.StoredFolder) []*simtenant.StoredFolder {
	if f.ID != f.Box.Root.ID || f.Box.Address == "" {
		return f.Children
	}
	out := append([]*simtenant.StoredFolder(nil), f.Children...)
	for _, g := range f.Box.Folders {
		if g.Parent == nil {
			out = append(out, withParent(g, f))
		}
	}
	return out
}
