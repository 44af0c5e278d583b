/**
 * Business rule "Portcullis change check" on change_request.
 *   When: before, Update.  Order: 100.
 *   Condition: current.state.changesTo(-4) && current.type == 'normal'   // entering Assess
 *
 * Asks Portcullis before the approval policy runs, so the policy can read
 * `u_portcullis_recommendation`. `before` lets the fields be written without a second update.
 * For Flow Designer, call `new PortcullisGate().check(change)` from a script step instead and
 * expose `recommendation` as the action output.
 */
(function executeRule(current, previous /* null when async */) {
    var answer = new PortcullisGate().check(current);
    if (answer.recommendation == 'reject') {
        gs.addErrorMessage('Portcullis recommends rejecting this change: ' + (answer.summary || ''));
    }
})(current, previous);
