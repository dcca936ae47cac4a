package app

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/mailvault/mailvault/adapters/credential"
	"github.com/mailvault/mailvault/domain"
	"github.com/mailvault/mailvault/projections"
)

// AlertsSecretName is where the SMTP password is kept.
const AlertsSecretName = "alerts:smtp"

// SetAlerts records who gets alert mail and how; password (optional) is
// the SMTP password, kept in the secret store. With a user and no
// password, the password stored before stays (the console's edit leaves
// the field empty); with none stored, it is refused.
func (s *Service) SetAlerts(ctx context.Context, settings domain.AlertSettings, password credential.Secret) error {
	if err := settings.Validate(); err != nil {
		return invalid("alerts", "alerts", err.Error())
	}
	if settings.Username != "" && password.Empty() {
		if kept, err := s.Secrets.Get(AlertsSecretName); err != nil || kept.Empty() {
			return invalid("alerts", "alerts", "--username needs --password-file or --password-env")
		}
	}
	if !password.Empty() {
		if err := s.Secrets.Put(AlertsSecretName, password); err != nil {
			return fmt.Errorf("keep the SMTP password: %w", err)
		}
	}
	return s.record(ctx, domain.AlertsSet, "alerts", settings)
}

// AlertsOff stops alert mail and forgets the SMTP password.
func (s *Service) AlertsOff(ctx context.Context) error {
	_ = s.Secrets.Delete(AlertsSecretName) // none when the relay needs no login
	return s.record(ctx, domain.AlertsRemoved, "alerts", nil)
}

// AlertSettings are the alert settings (never the password); ok is false
// when alerts are off.
func (s *Service) AlertSettings(_ context.Context) (settings domain.AlertSettings, ok bool, err error) {
	st, err := s.load()
	if err != nil {
		return settings, false, err
	}
	return AlertSettingsIn(st.raw)
}

// AlertSettingsIn reads the alert settings from a configuration the caller
// has read already (the daemon reads it once per tick).
func AlertSettingsIn(c *projections.Config) (settings domain.AlertSettings, ok bool, err error) {
	if c.Alerts == nil {
		return settings, false, nil
	}
	if err := json.Unmarshal(c.Alerts, &settings); err != nil {
		return settings, false, fmt.Errorf("the recorded alert settings do not read: %w", err)
	}
	return settings, true, nil
}

// Alerts are the alert settings with the SMTP password, for the mailer;
// ok is false when alerts are off.
func (s *Service) Alerts() (settings domain.AlertSettings, password credential.Secret, ok bool, err error) {
	settings, ok, err = s.AlertSettings(context.Background())
	if err != nil || !ok {
		return settings, password, false, err
	}
	if settings.Username != "" {
		if password, err = s.Secrets.Get(AlertsSecretName); err != nil {
			return settings, password, false, fmt.Errorf("the SMTP password is not in the secret store: %w", err)
		}
	}
	return settings, password, true, nil
}
