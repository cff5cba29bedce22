package gitlab

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"

	gl "gitlab.com/gitlab-org/api/client-go"
)

// CheckError is what Check found wrong with gitlab.url or the token. Its
// message names the URL (never the token) and what to do.
type CheckError struct {
	Status int // GitLab's HTTP status; 0 when it gave no usable answer
	// Unreachable is true when GitLab did not answer, or answered 5xx:
	// that may pass by itself, unlike a wrong URL or token.
	Unreachable bool
	Msg         string
}

func (e *CheckError) Error() string { return e.Msg }

// Check asks GitLab who the token belongs to (GET /user), to find a wrong
// URL or token before anything depends on them. It returns the username,
// or a *CheckError saying what is wrong: GitLab unreachable (Unreachable),
// the token refused (401) or without the scope to read the API (403),
// the URL not a GitLab API (404, or an answer that is not GitLab's JSON).
func (c *Client) Check(ctx context.Context) (string, error) {
	base := c.base
	u, resp, err := c.api.Users.CurrentUser(reqOpts(ctx))
	if err == nil && u != nil && u.Username != "" {
		c.mu.Lock()
		c.me = u.Username
		c.mu.Unlock()
		return u.Username, nil
	}
	var er *gl.ErrorResponse
	status := 0
	if resp != nil && resp.Response != nil {
		status = resp.StatusCode
	}
	if errors.As(err, &er) && er.Response != nil {
		status = er.Response.StatusCode
	}
	notAPI := func(what string) error {
		return &CheckError{Status: status, Msg: fmt.Sprintf(
			"gitlab.url %s does not look like a GitLab API: GET %s/api/v4/user %s; gitlab.url is the address of the GitLab instance, such as https://gitlab.example.com, without /api/v4", base, base, what)}
	}
	switch {
	case errors.Is(err, gl.ErrNotFound) || status == http.StatusNotFound:
		return "", notAPI("answered 404 Not Found")
	case status == http.StatusUnauthorized:
		return "", &CheckError{Status: status, Msg: fmt.Sprintf(
			"GitLab at %s refused the token (401 Unauthorized): it is wrong, expired or revoked; create a token as docs/GITLAB.md says and put it where gitlab.token_env or gitlab.token_file point", base)}
	case status == http.StatusForbidden:
		why := ""
		if er != nil && er.Message != "" {
			why = " (" + c.redact(er.Message) + ")"
		}
		return "", &CheckError{Status: status, Msg: fmt.Sprintf(
			"GitLab at %s does not let the token read the API (403 Forbidden%s): give it the api scope (read_api is enough with gitlab.mode: dry_run), and check that its user is not blocked", base, why)}
	case status >= 500:
		return "", &CheckError{Status: status, Unreachable: true, Msg: fmt.Sprintf(
			"GitLab at %s answered %d %s to GET /api/v4/user: it, or a proxy in front of it, is down", base, status, http.StatusText(status))}
	case status >= 300 && status < 400:
		return "", notAPI(fmt.Sprintf("answered a redirect (%d)", status))
	case status != 0 && status != http.StatusOK:
		return "", notAPI(fmt.Sprintf("answered %d %s", status, http.StatusText(status)))
	case status == http.StatusOK:
		return "", notAPI("answered something that is not GitLab's user JSON (a login page or another server?)")
	}
	return "", &CheckError{Unreachable: true, Msg: fmt.Sprintf(
		"cannot reach GitLab at %s: %s; check gitlab.url and that this host can reach it (DNS, firewall, proxy)", base, c.redact(transportReason(err)))}
}

// transportReason says why a request got no answer, without the request's
// URL (client-go and net/http put it in their errors).
func transportReason(err error) string {
	var dns *net.DNSError
	var cert *x509.UnknownAuthorityError
	var host x509.HostnameError
	var op *net.OpError
	var ue *url.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded) || isTimeout(err):
		return "no answer before the timeout (gitlab.timeout)"
	case errors.As(err, &dns):
		return fmt.Sprintf("the host name %s does not resolve", dns.Name)
	case errors.As(err, &cert):
		return "its TLS certificate is signed by an authority this host does not trust"
	case errors.As(err, &host):
		return "its TLS certificate is not for this host name"
	case errors.As(err, &op):
		return strings.TrimSpace(op.Err.Error()) + " (" + op.Op + ")"
	case errors.As(err, &ue):
		return ue.Err.Error()
	case err == nil:
		return "no answer"
	}
	return err.Error()
}

func isTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}
