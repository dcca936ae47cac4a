package simtenant

import (
	"slices"
	"testing"
)

func TestSortByKey(t *testing.T) {
	type e struct{ k, id string }
	for _, c := range []struct {
		desc bool
		want []string
	}{
		{false, []string{"a1", "a2", "b1", "c1"}},
		{true, []string{"c1", "b1", "a1", "a2"}}, // equal keys keep their order
	} {
		list := []e{{"b", "b1"}, {"a", "a1"}, {"c", "c1"}, {"a", "a2"}}
		calls := 0
		SortByKey(list, func(x e) string { calls++; return x.k }, c.desc)
		var got []string
		for _, x := range list {
			got = append(got, x.id)
		}
		if !slices.Equal(got, c.want) || calls != len(list) {
			t.Errorf("desc %v: %v with %d key calls", c.desc, got, calls)
		}
	}
}
