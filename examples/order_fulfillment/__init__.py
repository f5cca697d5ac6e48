"""Order fulfilment saga: reserve, charge, ship; compensate in reverse when shipping fails."""
