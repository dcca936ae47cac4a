package pipeline

import (
	"testing"

	"github.com/mailvault/mailvault/domain"
)

type limitSeen struct {
	mailbox string
	rate    float64
}

// TestSiblingLimit: the pace a new mailbox starts at is the highest limit
// found once two mailboxes have met one, nothing before.
func TestSiblingLimit(t *testing.T) {
	for _, tc := range []struct {
		name   string
		limits []limitSeen
		want   float64
	}{
		{"none met", nil, 0},
		{"one mailbox (maybe a folder's)", []limitSeen{{"a", 0.6}}, 0},
		{"two mailboxes", []limitSeen{{"a", 15}, {"b", 16}}, 16},
		{"a folder's limit beside a mailbox's", []limitSeen{{"slow", 0.6}, {"b", 16}}, 16},
		{"many", []limitSeen{{"a", 9}, {"b", 2}, {"c", 12}, {"d", 11}}, 12},
		{"the highest is cut", []limitSeen{{"a", 9}, {"c", 12}, {"b", 2}, {"c", 7}}, 9},
		{"the highest is cut, and still highest", []limitSeen{{"a", 9}, {"c", 12}, {"c", 10}}, 10},
		{"one mailbox cut twice is still one", []limitSeen{{"a", 9}, {"a", 7}}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := NewPacer(nil, nil)
			for _, l := range tc.limits {
				p.noteLimit(l.mailbox, domain.LearnedPace{Rate: l.rate})
			}
			if got := p.sibling().Rate; got != tc.want {
				t.Errorf("siblings' rate %v, want %v", got, tc.want)
			}
		})
	}
}
