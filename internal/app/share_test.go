package app

import (
	"testing"

	"github.com/mailvault/mailvault/domain"
)

func TestShareAppLimits(t *testing.T) {
	for _, tc := range []struct {
		name       string
		in         domain.Limits
		parts      int
		inFlight   int
		windowReqs int
	}{
		{"alone", domain.Limits{AppMaxInFlight: 27, AppWindowRequests: 600}, 1, 27, 600},
		{"three workers", domain.Limits{AppMaxInFlight: 27, AppWindowRequests: 600}, 3, 9, 200},
		{"more slots than requests", domain.Limits{AppMaxInFlight: 4, AppWindowRequests: 5}, 12, 1, 1},
		{"no app limit stays none", domain.Limits{}, 9, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := tc.in
			shareAppLimits(&l, tc.parts)
			if l.AppMaxInFlight != tc.inFlight || l.AppWindowRequests != tc.windowReqs {
				t.Fatalf("got %d in flight, %d per window", l.AppMaxInFlight, l.AppWindowRequests)
			}
		})
	}
}
