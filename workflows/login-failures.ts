// Failure types of the login workflow (both paths), for the slot to explain.
// Node-free, like everything under workflows/.
export const LoginWorkflowFailure = {
  timedOut: 'LoginTimedOut',
  cancelled: 'LoginCancelled',
  tooManyBadCodes: 'LoginTooManyBadCodes',
  cliFailed: 'LoginCliFailed',
  tooManyRestarts: 'LoginTooManyRestarts',
  /** Device flow: the device code expired at the server before it was approved. */
  expired: 'LoginExpired',
  /** Device flow: the operator denied the device (`access_denied`). */
  denied: 'LoginDenied',
  /** Device flow: the server refused the client or the grant while polling. */
  refused: 'LoginRefused',
} as const;
