package pipeline

import (
	"testing"

	"github.com/mailvault/mailvault/domain"
)

// TestSiblingLimit: the pace a new mailbox starts at is the highest limit
// found once two mailboxes have met one, nothing before.
func TestSiblingLimit(t *testing.T) {
	for _, tc := range []struct {
		name   string
		limits map[string]float64
		want   float64
	}{
		{"none met", nil, 0},
		{"one mailbox (maybe a folder's)", map[string]float64{"a": 0.6}, 0},
		{"two mailboxes", map[string]float64{"a": 15, "b": 16}, 16},
		{"a folder's limit beside a mailbox's", map[string]float64{"slow": 0.6, "b": 16}, 16},
		{"many", map[string]float64{"a": 9, "b": 2, "c": 12, "d": 11}, 12},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := NewPacer(nil, nil)
			for m, r := range tc.limits {
				p.limits[m] = domain.LearnedPace{Rate: r}
			}
			if got := p.sibling().Rate; got != tc.want {
				t.Errorf("sibling rate %v, want %v", got, tc.want)
			}
		})
	}
}
