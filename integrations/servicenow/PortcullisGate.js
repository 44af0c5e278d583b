/**
 * Script Include `PortcullisGate` (Application: Global, Accessible from: All application scopes,
 * Client callable: false). Asks Portcullis about a change request and records the answer.
 *
 *   var answer = new PortcullisGate().check(current);   // current: a change_request GlideRecord
 *   answer.recommendation  // "approve" | "reject" | "needs_cab" | "error"
 *
 * Uses the outbound REST message `Portcullis` with method `change-check` (see README.md); the
 * bearer token lives in the REST message's auth profile, never in this script.
 */
var PortcullisGate = Class.create();
PortcullisGate.prototype = {
    initialize: function () {},

    check: function (change) {
        var rm = new sn_ws.RESTMessageV2('Portcullis', 'change-check');
        rm.setStringParameterNoEscape('number', this._json(change.getValue('number')));
        rm.setStringParameterNoEscape('sys_id', this._json(change.getUniqueValue()));
        rm.setStringParameterNoEscape('cmdb_ci', this._json(change.cmdb_ci.name + ''));
        rm.setStringParameterNoEscape('environment', this._json(this._environment(change)));
        rm.setStringParameterNoEscape('artifacts', this._json(change.getValue('u_artifacts') || ''));
        rm.setStringParameterNoEscape('requested_by', this._json(change.requested_by.user_name + ''));
        // A change sent back and re-submitted is a new attempt; retries of one attempt are not.
        rm.setStringParameterNoEscape('attempt', this._json(String(parseInt(change.getValue('u_portcullis_attempt') || '1', 10))));
        rm.setStringParameterNoEscape('jira_keys', this._json(change.getValue('u_jira_keys') || ''));
        rm.setStringParameterNoEscape('risk', this._json(this._risk(change.getValue('risk'))));
        rm.setStringParameterNoEscape('type', this._json(change.getValue('type')));
        rm.setHttpTimeout(30000);

        var answer;
        try {
            var response = rm.execute();
            var status = response.getStatusCode();
            var body = response.getBody();
            if (status == 200) {
                answer = JSON.parse(body);
            } else {
                answer = { recommendation: 'error', summary: 'Portcullis answered ' + status + ': ' + body };
            }
        } catch (e) {
            answer = { recommendation: 'error', summary: 'Portcullis could not be reached: ' + e };
        }
        this._record(change, answer);
        return answer;
    },

    // Raw values only: display values are localised (shared/contracts/adapters.md §3.5).
    _risk: function (raw) {
        return { '1': 'very_high', '2': 'high', '3': 'moderate', '4': 'low' }[raw] || 'unknown';
    },

    _environment: function (change) {
        // Adjust to where your instance keeps it (a CI attribute, a choice field on the change).
        return change.getValue('u_environment') || 'prod';
    },

    // RESTMessageV2 substitutes ${name} verbatim inside the JSON template: escape as a JSON
    // string body (without the surrounding quotes, which the template has).
    _json: function (s) {
        return JSON.stringify(String(s || '')).slice(1, -1);
    },

    _record: function (change, answer) {
        change.setValue('u_portcullis_recommendation', answer.recommendation);
        change.setValue('u_portcullis_decision', answer.decisionId || '');
        var notes = 'Portcullis: ' + answer.recommendation + ' — ' + (answer.summary || '');
        (answer.reasons || []).forEach(function (r) {
            notes += '\n- ' + r.ruleId + ': ' + r.reason + (r.remediation ? ' (' + r.remediation + ')' : '');
        });
        if (answer.decisionUrl) {
            notes += '\nDecision: ' + answer.decisionUrl;
        }
        change.work_notes = notes;
    },

    type: 'PortcullisGate'
};
