_vochi_crm_completion() {
    local IFS=$'
'
    COMPREPLY=( $( env COMP_WORDS="${COMP_WORDS[*]}" \
                   COMP_CWORD=$COMP_CWORD \
                   _VOCHI_CRM_COMPLETE=complete_bash $1 ) )
    return 0
}

complete -o default -F _vochi_crm_completion vochi-crm
