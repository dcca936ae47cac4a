package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/rs/zerolog"
	"github.com/spf13/cobra"

	"github.com/mailvault/mailvault/adapters/credential"
	"github.com/mailvault/mailvault/adapters/eventlog"
	"github.com/mailvault/mailvault/adapters/mailer"
	"github.com/mailvault/mailvault/domain"
	"github.com/mailvault/mailvault/internal/app"
	"github.com/mailvault/mailvault/projections"
)

var alertsTestOperation = operation("alerts-test", func(ctx context.Context, g *globalFlags, _ struct{}, out, _ io.Writer) error {
	return withService(g, func(svc *app.Service) error {
		m, ok, err := loadMailer(svc)
		if err != nil || !ok {
			return usageErr("alerts are not set (mailvault alerts set ...)%s", errSuffix(err))
		}
		if err := m.Send(ctx, "mailvault: test alert", "This is a test of mailvault's alert mail.\n"); err != nil {
			return &exitError{code: exitErrors, err: err}
		}
		fmt.Fprintf(out, "sent to %s\n", strings.Join(m.Settings.To, ", "))
		return nil
	})
})

func newAlertsCmd(g *globalFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "alerts", Short: "Mail about bad news (and good news, and a daily summary) over SMTP"}
	var s domain.AlertSettings
	var passwordFile, passwordEnv string
	set := &cobra.Command{Use: "set --smtp-host H --from A --to B [flags]", Short: "Set who gets alert mail, about what, through which SMTP server", Args: cobra.NoArgs,
		Long: `Alerts go out when a run ends: by default for bad news (a run not finished, or finished
with warnings: quarantined items, folders skipped for throttling), with --on good-news for
finished runs too, and with --daily HH:MM a summary of the last 24 hours each day (sent by
the daemon). STARTTLS is mandatory unless --starttls says otherwise; the SMTP password is kept in
the encrypted secret store.`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s.On = splitList(s.On)
			s.To = splitList(s.To)
			var secret credential.Secret
			if passwordFile != "" || passwordEnv != "" {
				var err error
				if secret, err = loadSecret("SMTP password", passwordFile, passwordEnv); err != nil {
					return usageErr("%v", err)
				}
			}
			return withApp(g, func(svc application) error { return svc.SetAlerts(cmd.Context(), s, secret) })
		}}
	f := set.Flags()
	f.StringVar(&s.Host, "smtp-host", "", "SMTP server")
	f.IntVar(&s.Port, "smtp-port", 587, "SMTP port (587: submission with STARTTLS)")
	f.StringVar(&s.From, "from", "", "sender address")
	f.StringSliceVar(&s.To, "to", nil, "recipient (repeatable or comma-separated)")
	f.StringVar(&s.Username, "username", "", "SMTP user (AUTH PLAIN, only over TLS)")
	f.StringVar(&passwordFile, "password-file", "", "file holding the SMTP password")
	f.StringVar(&passwordEnv, "password-env", "", "environment variable holding the SMTP password")
	f.StringVar(&s.TLS, "starttls", "mandatory", "mandatory, opportunistic or none")
	f.StringVar(&s.CACert, "ca-cert", "", "CA certificate (PEM) of a relay with a private certificate")
	f.StringSliceVar(&s.On, "on", []string{domain.AlertBadNews}, "what to mail about: bad-news, good-news")
	f.StringVar(&s.Daily, "daily", "", "send a daily summary at HH:MM (the daemon's time zone)")

	show := &cobra.Command{Use: "show", Short: "Show the alert settings (never the password)", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withApp(g, func(svc application) error {
				s, ok, err := svc.AlertSettings(cmd.Context())
				if err != nil {
					return err
				}
				if !ok {
					fmt.Fprintln(cmd.OutOrStdout(), "alerts are off")
					return nil
				}
				fmt.Fprintf(cmd.OutOrStdout(), "smtp %s:%d (starttls %s), from %s to %s, on %s, daily %s\n", s.Host, s.Port, s.TLS, s.From,
					strings.Join(s.To, ", "), strings.Join(s.On, ", "), orNone(s.Daily))
				return nil
			})
		}}
	test := &cobra.Command{Use: "test", Short: "Send a test mail with the current settings", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return alertsTestOperation(cmd, g, struct{}{}) }}
	off := &cobra.Command{Use: "off", Short: "Send no more alerts", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withApp(g, func(svc application) error { return svc.AlertsOff(cmd.Context()) })
		}}
	cmd.AddCommand(set, show, test, off)
	return cmd
}

func splitList(in []string) []string {
	var out []string
	for _, v := range in {
		for _, p := range strings.Split(v, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
	}
	return out
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

func errSuffix(err error) string {
	if err == nil {
		return ""
	}
	return ": " + err.Error()
}

// loadMailer reads the alert settings and their password.
func loadMailer(svc *app.Service) (mailer.Mailer, bool, error) {
	settings, pw, ok, err := svc.Alerts()
	return mailer.Mailer{Settings: settings, Password: pw}, ok, err
}

// alertRun mails about a run that ended, if the settings ask for it, and
// records the outcome in the log (recipients count and error, no secret).
func alertRun(ctx context.Context, g *globalFlags, lg *eventlog.Log, log zerolog.Logger, rep *projections.Report) {
	m, ok, err := loadMailer(newService(g, lg))
	if err != nil {
		log.Error().Err(err).Msg("alert mail")
		return
	}
	if !ok || !m.Settings.Wants(rep.State) {
		return
	}
	subject := fmt.Sprintf("mailvault: run %s %s", rep.RunID, rep.State)
	if rep.ItemsQuarantined > 0 {
		subject += fmt.Sprintf(", %d items quarantined", rep.ItemsQuarantined)
	}
	if rep.FoldersSkipped > 0 {
		subject += fmt.Sprintf(", %d folders skipped", rep.FoldersSkipped)
	}
	var body strings.Builder
	rep.WriteText(&body)
	fmt.Fprintf(&body, "\nThe run's CSV log: %s\n", "logs/"+rep.RunID+".csv")
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	sendErr := m.Send(sctx, subject, body.String())
	recordAlert(ctx, lg, rep.RunID, "run", len(m.Settings.To), sendErr)
	if sendErr != nil {
		log.Error().Err(sendErr).Str("run", rep.RunID).Msg("alert mail not sent")
	}
}

// recordAlert appends alert_sent or alert_failed on the ops topic.
func recordAlert(ctx context.Context, lg *eventlog.Log, run, what string, recipients int, err error) {
	ev := domain.Event{Type: domain.AlertSent, ID: domain.DeriveID("alert", what, run), Run: run, Time: time.Now().UTC(), Count: recipients, Reason: what}
	if err != nil {
		ev.Type, ev.ID, ev.Message = domain.AlertFailed, domain.DeriveID("alert-failed", what, run, ev.Time.String()), domain.ShortMessage(err.Error())
	}
	_ = projections.RecordOps(context.WithoutCancel(ctx), lg, ev)
}
