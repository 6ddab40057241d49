package depot

// Role is a user's role in one cohort.
type Role string

// Cohort roles. A manager can do everything an uploader and a reader can,
// delete files and manage their history (PermManage).
const (
	RoleUploader Role = "uploader"
	RoleReader   Role = "reader"
	RoleManager  Role = "manager"
)

// Valid reports whether r is a known role.
func (r Role) Valid() bool { return r == RoleUploader || r == RoleReader || r == RoleManager }

// Permission is one kind of access to a cohort's files.
type Permission string

// Permissions checked per request.
const (
	PermUpload Permission = "upload"
	PermRead   Permission = "read" // download, stat
	PermList   Permission = "list"
	PermDelete Permission = "delete"
	// PermManage covers what changes a path's history beyond adding a
	// version: changing its class, restoring an old version, undeleting,
	// purging bytes for good and placing or releasing holds.
	PermManage Permission = "manage"
)

// Principal is an authenticated user with the grants in force at the time of
// authentication.
type Principal struct {
	User       string          `json:"user"`
	Admin      bool            `json:"admin"`
	AuthMethod string          `json:"auth_method"`
	Grants     map[string]Role `json:"grants"` // cohort → role
	// IdP and Subject name the person at their OpenID provider (issuer URL
	// and "sub" claim) when AuthMethod is AuthMethodOIDC; empty otherwise.
	IdP     string `json:"idp,omitempty"`
	Subject string `json:"sub,omitempty"`
}

// AuthMethodOIDC is the Principal.AuthMethod of a person signed in through
// an OpenID Connect provider (browser session or depot login).
const AuthMethodOIDC = "oidc"

// Can reports whether p may do perm in cohort. Admins may do everything.
func (p Principal) Can(cohort string, perm Permission) bool {
	if p.Admin {
		return true
	}
	role, ok := p.Grants[cohort]
	if !ok {
		return false
	}
	switch perm {
	case PermUpload:
		return role == RoleUploader || role == RoleManager
	case PermRead:
		return role == RoleReader || role == RoleManager
	case PermList:
		return true // every role may see the cohort's listing
	case PermDelete, PermManage:
		return role == RoleManager
	}
	return false
}

// Caller is who makes a request and from where, as the web tier saw it. It
// travels with every internal request made for one user request, so that
// services can authenticate, authorise and audit it.
type Caller struct {
	// Token is the user's bearer token (never logged).
	Token string
	// TrustedUser is a user name vouched for by a trusted single-sign-on
	// proxy in front of web; used only when Token is empty.
	TrustedUser string
	// SSHKey is an SSH public key in authorized_keys form that the user
	// proved to hold in an SSH handshake with web (SFTP); used only when
	// Token is empty. services looks it up among registered keys.
	SSHKey    string
	RequestID string
	WebNode   string
	ClientIP  string
	UserAgent string
}
