package domain

import "testing"

// A batch's item says what an item_stored event said.
func TestStoredItemOutcome(t *testing.T) {
	for _, c := range []struct {
		it   StoredItem
		want string
	}{{StoredItem{ItemID: "i"}, OutcomeStored}, {StoredItem{ItemID: "i", Unchanged: true}, OutcomeUnchanged}} {
		if got := c.it.Outcome(); got != c.want {
			t.Errorf("%+v: %s, want %s", c.it, got, c.want)
		}
	}
}
