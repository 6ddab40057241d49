package maintenance

import (
	"os"
	"strings"
	"testing"
)

// TestEveryKindHasARule: deploy/alerts.yml has a rule for every alert kind
// depot raises, named as the kind's Alertmanager alertname, and the rule
// reads that kind's counter.
func TestEveryKindHasARule(t *testing.T) {
	b, err := os.ReadFile("../deploy/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	rules := string(b)
	for _, kind := range AlertKinds {
		name := alertName(kind)
		i := strings.Index(rules, "- alert: "+name+" ")
		if i < 0 {
			t.Errorf("no rule %s for alert kind %s", name, kind)
			continue
		}
		rest := rules[i+1:]
		if j := strings.Index(rest, "- alert:"); j >= 0 {
			rest = rest[:j]
		}
		if !strings.Contains(rest, `depot_alerts_total{kind="`+kind+`"}`) {
			t.Errorf("rule %s does not read depot_alerts_total{kind=%q}", name, kind)
		}
	}
}
