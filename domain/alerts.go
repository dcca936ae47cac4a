package domain

import (
	"fmt"
	"net/mail"
	"strings"
	"time"
)

// Alert kinds an administrator can ask for.
const (
	AlertBadNews  = "bad-news"  // runs not finished or finished with warnings
	AlertGoodNews = "good-news" // runs finished cleanly
)

// AlertSettings say who gets mail about what. The SMTP password is in the
// secret store, never here.
type AlertSettings struct {
	Host     string   `json:"smtp_host"`
	Port     int      `json:"smtp_port"`
	From     string   `json:"from"`
	To       []string `json:"to"`
	Username string   `json:"username,omitempty"`
	// TLS is "mandatory" (STARTTLS or fail), "opportunistic" or "none".
	TLS    string   `json:"starttls"`
	CACert string   `json:"ca_cert,omitempty"`
	On     []string `json:"on"`
	// Daily, "HH:MM" in the daemon's time zone, sends a summary of the last
	// 24 hours every day; empty sends none.
	Daily string `json:"daily,omitempty"`
}

// Validate explains everything wrong with the settings.
func (a AlertSettings) Validate() error {
	var errs []string
	if a.Host == "" {
		errs = append(errs, "an SMTP host is required")
	}
	if a.Port < 1 || a.Port > 65535 {
		errs = append(errs, fmt.Sprintf("SMTP port %d is not a port", a.Port))
	}
	if _, err := mail.ParseAddress(a.From); err != nil {
		errs = append(errs, fmt.Sprintf("from %q is not an address", a.From))
	}
	if len(a.To) == 0 {
		errs = append(errs, "at least one recipient is required")
	}
	for _, to := range a.To {
		if _, err := mail.ParseAddress(to); err != nil {
			errs = append(errs, fmt.Sprintf("recipient %q is not an address", to))
		}
	}
	switch a.TLS {
	case "mandatory", "opportunistic", "none":
	default:
		errs = append(errs, fmt.Sprintf("starttls %q: use mandatory, opportunistic or none", a.TLS))
	}
	for _, on := range a.On {
		if on != AlertBadNews && on != AlertGoodNews {
			errs = append(errs, fmt.Sprintf("alert kind %q: use %s or %s", on, AlertBadNews, AlertGoodNews))
		}
	}
	if a.Daily != "" {
		if _, err := time.Parse("15:04", a.Daily); err != nil {
			errs = append(errs, fmt.Sprintf("daily summary time %q: use HH:MM", a.Daily))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("alert settings: %s", strings.Join(errs, "; "))
	}
	return nil
}

// Wants says whether a run that ended in state deserves a mail.
func (a AlertSettings) Wants(state RunState) bool {
	kind := AlertBadNews
	if state == StateFinished {
		kind = AlertGoodNews
	}
	for _, on := range a.On {
		if on == kind {
			return true
		}
	}
	return false
}

// DailyDue says whether the summary for now's day is due: the time of day
// has passed. Whether it was sent already is the log's to say.
func (a AlertSettings) DailyDue(now time.Time) (day string, due bool) {
	if a.Daily == "" {
		return "", false
	}
	t, err := time.Parse("15:04", a.Daily)
	if err != nil {
		return "", false
	}
	at := time.Date(now.Year(), now.Month(), now.Day(), t.Hour(), t.Minute(), 0, 0, now.Location())
	return now.Format("2006-01-02"), !now.Before(at)
}
