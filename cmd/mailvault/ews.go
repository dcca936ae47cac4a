package main

import (
	"github.com/spf13/cobra"

	"github.com/mailvault/mailvault/adapters/credential"
	"github.com/mailvault/mailvault/adapters/ews"
	"github.com/mailvault/mailvault/adapters/ewssim"
	"github.com/mailvault/mailvault/adapters/simtenant"
)

// ewsFlags are the EWS source's command-line settings.
type ewsFlags struct {
	url, username         string
	passwordFile          string
	passwordEnv           string
	passwordValue         string // refused
	auth                  string
	impersonate           bool
	publicFolders         []string
	content               string
	batch, maxConcurrency int
}

func (f *ewsFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.url, "ews-url", "", "EWS endpoint, e.g. https://mail.contoso.com/EWS/Exchange.asmx (ews source)")
	fl.StringVar(&f.username, "username", "", "service account (user@domain or DOMAIN\\user)")
	fl.StringVar(&f.passwordFile, "password-file", "", "file holding the account's password (or, with --auth oauth, an access token)")
	fl.StringVar(&f.passwordEnv, "password-env", "", "environment variable holding the password (or token)")
	fl.StringVar(&f.passwordValue, "password", "", "")
	_ = fl.MarkHidden("password")
	fl.StringVar(&f.auth, "auth", ews.AuthNTLM, "authentication: basic, ntlm or oauth")
	fl.BoolVar(&f.impersonate, "impersonate", false, "use ExchangeImpersonation (the account needs the ApplicationImpersonation role)")
	fl.StringArrayVar(&f.publicFolders, "public-folder", nil, "back up a public folder by path; PATH/** includes every subfolder, present and future (repeatable)")
	fl.StringVar(&f.content, "ews-content", ews.ModeExport, "content: export (ExportItems, full fidelity) or mime (GetItem MIME)")
	fl.IntVar(&f.batch, "ews-batch", ews.DefaultBatch, "items per ExportItems or GetItem request")
	fl.IntVar(&f.maxConcurrency, "ews-max-concurrency", ews.DefaultMaxConcurrency, "EWSMaxConcurrency of the account's throttling policy: requests in flight for the account")
}

// spec is the connection the flags describe, with its secret.
func (f *ewsFlags) spec(caCert string) (connectionSpec, credential.Secret, error) {
	spec, err := f.settings(caCert)
	if err != nil {
		return spec, credential.Secret{}, err
	}
	secret, err := loadSecret("password", f.passwordFile, f.passwordEnv)
	if err != nil {
		return spec, secret, usageErr("%v", err)
	}
	return spec, secret, nil
}

// settings is the connection the flags describe, without its password.
func (f *ewsFlags) settings(caCert string) (connectionSpec, error) {
	if f.passwordValue != "" {
		return connectionSpec{}, usageErr("--password is refused: a password on the command line is visible to every local user; use --password-file or --password-env")
	}
	spec := connectionSpec{Type: "ews", EWSURL: f.url, Username: f.username, Auth: f.auth, Impersonate: f.impersonate, CACert: caCert,
		Content: f.content, Batch: f.batch, MaxConcurrency: f.maxConcurrency}
	if err := spec.Validate("--source ews"); err != nil {
		return spec, usageErr("%v", err)
	}
	return spec, nil
}

// givesSecret says whether the flags name a password.
func (f *ewsFlags) givesSecret() bool { return f.passwordFile != "" || f.passwordEnv != "" }

func newSimEWSCmd() *cobra.Command {
	var sf simFlags
	var record string
	cmd := &cobra.Command{
		Use:   "ews --tenant FILE",
		Short: "Serve a tenant file as Exchange Server EWS (HTTPS, Basic and NTLM, throttling, faults)",
		Long: `Serve a tenant file (mailboxes and public_folders) as Exchange Web Services at
/EWS/Exchange.asmx until interrupted. When ready it prints one JSON line on
stdout with ews_url, username, password and ca_cert.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return sf.serve(cmd, func(t *simtenant.Tenant) (any, func() error, error) {
				sim, err := ewssim.Start(t, ewssim.StartOptions{Options: ewssim.Options{RecordDir: record}, Listen: sf.listen, TLS: sf.tls, Dir: sf.dir})
				if err != nil {
					return nil, nil, err
				}
				return sim.Endpoint, sim.Close, nil
			})
		},
	}
	sf.register(cmd)
	cmd.Flags().StringVar(&record, "record", "", "write every request and response body element to this directory (for schema validation)")
	return cmd
}
